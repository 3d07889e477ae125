"""How data gets in: export files and Pub/Sub messages -> typed rows of the three tables, and dead letters."""
