"""The dashboard, the public pages and the annual report, drawn by the scoring service."""
