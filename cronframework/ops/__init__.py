"""What operators read: status, metrics, structured logs, snapshots."""
