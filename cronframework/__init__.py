"""cronframework: a distributed cron on ZooKeeper, after Google's design (SRE book)."""

__version__ = "0.1.0"
