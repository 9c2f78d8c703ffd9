-- Move money between two accounts and record it, in one transaction.
\set from random(1, 100)
\set to 1 + permute(:from, 100, :random_seed) % 100
\set amount random(1, 10)
BEGIN;
SELECT balance FROM accounts WHERE id = :from FOR UPDATE \gset from_
\if :from_balance >= :amount
UPDATE accounts SET balance = balance - :amount WHERE id = :from;
UPDATE accounts SET balance = balance + :amount WHERE id = :to;
INSERT INTO orders (txid, customer, amount) VALUES (:txid, :from, 0);
\endif
COMMIT;
