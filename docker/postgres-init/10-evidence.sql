-- Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d).
-- The custody ledger lives in its own database and role, apart from Airflow's metadata:
-- its backups, retention and access rules are those of evidence, not of a scheduler.
CREATE ROLE evidence LOGIN PASSWORD 'evidence';
CREATE DATABASE evidence OWNER evidence;
