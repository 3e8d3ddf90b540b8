-- One database per service, owned by the yardstick role (POSTGRES_USER in deploy/compose.yaml).
-- The postgres image runs this once, when its data volume is empty; \gexec keeps it re-runnable.
SELECT format('CREATE DATABASE %I OWNER yardstick', name)
FROM unnest(ARRAY[
    'yardstick_intake',
    'yardstick_targets',
    'yardstick_scoring',
    'yardstick_notices',
    'yardstick_auth'
]) AS name
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name)
\gexec
