"""The consumer side: claiming, running, completing and rescuing jobs."""
