-- The ceiling of any seat counter: one conditional UPDATE on one row, autocommit.
UPDATE loadtest.hot SET n = n + 1 WHERE id = 1 AND n < 9000000000000000000;
