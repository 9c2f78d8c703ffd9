-- A small shop: accounts whose total balance transfers conserve, and orders that
-- each store the txid of the execution that placed them.
CREATE TABLE accounts (
    id      int PRIMARY KEY,
    balance bigint NOT NULL
);
INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100) AS g;

CREATE TABLE orders (
    id       bigserial PRIMARY KEY,
    txid     uuid NOT NULL,
    customer int NOT NULL,
    amount   int NOT NULL,
    note     text DEFAULT 'placed; thank you'
);
CREATE INDEX orders_txid ON orders (txid);
