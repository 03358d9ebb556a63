"""Data: the Video-R1 row format, its schema, balancing, and the synthetic set."""
