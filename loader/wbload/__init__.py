"""wbload: deploy and operate RedisGears write-behind recipes (Redis JSON -> MongoDB)."""

__version__ = "0.1.0"
