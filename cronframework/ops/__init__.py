"""What operators read: status, next launches, structured logs, snapshots."""
