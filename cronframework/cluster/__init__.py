"""Processes: a ZooKeeper replica (election, hand-over) or the embedded scheduler; config and signals."""
