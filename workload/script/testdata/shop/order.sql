-- One order, in its own (implicit) transaction.
\set customer random(1, 100)
\set amount random_exponential(1, 500, 3.0)
INSERT INTO orders (txid, customer, amount)
VALUES (:txid, :customer, :amount);
