"""`segstream bench`: segstream against the raw-Kafka floor and Faust peers, in one run."""
