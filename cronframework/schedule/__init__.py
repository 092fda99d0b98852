"""Schedule math: cron fields, zones and DST, `?` and @every hashing, durations. Pure; the only croniter user."""
