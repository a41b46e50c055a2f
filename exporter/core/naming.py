"""The one prefix of every metric this package exports."""

PREFIX = "krakenbot"
