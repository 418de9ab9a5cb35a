"""Business rules. Each function takes a session; the one that defines a unit of work commits."""
