"""notices: recurring-problem detection and the performance improvement notice lifecycle."""
