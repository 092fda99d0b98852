"""cronframework: a distributed cron on ZooKeeper, after Google's design (SRE book, "Distributed Periodic Scheduling")."""

__version__ = "0.1.0"
