"""Where results go: alert and dead-letter sinks, the window summary and the run report."""
