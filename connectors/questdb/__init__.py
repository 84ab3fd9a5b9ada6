"""QuestDB: SQL over REST, table definitions, the ILP/HTTP sink."""
