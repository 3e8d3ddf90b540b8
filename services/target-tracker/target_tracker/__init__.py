"""target-tracker: annual targets, daily progress with an audit trail, on-track forecasts."""
