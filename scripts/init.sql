-- Run once by the postgres image when it creates a new data volume (docker-entrypoint-initdb.d),
-- connected as POSTGRES_USER (pokervod) to POSTGRES_DB (pokervod). PRD 9.2.
-- The migrations create the schema too when it is missing; creating it here means the
-- application role owns it from the first start, whoever runs the first migration.
CREATE SCHEMA IF NOT EXISTS pokervod;
GRANT ALL PRIVILEGES ON SCHEMA pokervod TO pokervod;
