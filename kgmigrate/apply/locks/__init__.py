"""The three kinds of waiting: `runner` serialises kgmigrate runs on a database (an advisory lock);
`ddl` bounds each statement's wait for table locks and retries its file; `blockers` names, for
`ddl`'s messages, the sessions that held a table lock a statement waited for."""
