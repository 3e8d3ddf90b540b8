"""scoring: the published 100-point method, live and final scorecards, rankings."""
