"""The ZooKeeper state store: fenced multi-op transactions, pipelined batches, the open index."""
