-- The schema the capture in capture.csv ran against: the replay test creates it
-- afresh on its target, as a rehearsal's target holds the captured database.
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL, note text);
CREATE TABLE orders (id int PRIMARY KEY, account int NOT NULL, item text NOT NULL, qty int NOT NULL, comment text);
CREATE SEQUENCE audit_ids START 1000;
CREATE TABLE audit (id bigint PRIMARY KEY, what text NOT NULL);
CREATE TABLE totals (name text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO totals VALUES ('orders', 0), ('deposits', 0);
