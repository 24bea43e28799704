"""Version of the instrumentation, recorded as the instrumentation scope's version."""

VERSION = "0.1.0"
