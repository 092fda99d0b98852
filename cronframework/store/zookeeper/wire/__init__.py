"""ZooKeeper's multi and multiRead framing, encoded once as bytes; pinned to kazoo's encoding by tests."""
