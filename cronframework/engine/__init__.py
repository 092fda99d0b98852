"""The leader's work: plan each tick, then launch through the two sync points, recover, prune, limit."""
