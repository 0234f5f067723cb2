"""pokervod-db: the database layer (block G) of the pokervod video archive."""
