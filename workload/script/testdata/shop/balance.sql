SELECT balance, id AS account FROM accounts WHERE id = :client_id % 100 + 1 \gset
\if :balance < 0
SELECT 1 / 0; -- never: balances stay positive
\endif
