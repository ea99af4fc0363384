//! The tenant transaction: `BEGIN` and the farm's `app.farm_id` sent with the first
//! statement, the pipelined commit, and the state machine that keeps a failed transaction from
//! being committed (or, when its connection failed, answers 503 for what follows in it).

use std::sync::{
    Arc,
    atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
};

use deadpool::managed::Object;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Param, PgManager};
use crate::error::{Error, Result};

const NOT_BEGUN: u8 = 0;
const OPEN: u8 = 1;
const FAILED: u8 = 2;
const FINISHED: u8 = 3;
/// Failed because its connection did (killed, closed, the database restarting): what follows
/// in it is [`Error::DatabaseUnavailable`] too, not a 500 for "a failed transaction".
const BROKEN: u8 = 4;

/// The state a statement's failure leaves the transaction in.
fn failed_state(error: &Error) -> u8 {
    if matches!(error, Error::DatabaseUnavailable(_)) {
        BROKEN
    } else {
        FAILED
    }
}

/// What a statement or a commit on a transaction that already failed answers.
fn already_failed(state: u8, what: &str) -> Error {
    if state == BROKEN {
        Error::DatabaseUnavailable(
            format!("{what} on a transaction whose connection failed").into(),
        )
    } else {
        Error::unexpected(format!("{what} on a failed transaction"))
    }
}

/// One transaction, scoped to one farm by `app.farm_id`.
///
/// Dropped without [`commit`](TenantTx::commit), it rolls back (the connection returns to the
/// pool only after its `ROLLBACK`). A statement that fails poisons it: `commit` then fails too,
/// so a caller can never believe a half-failed transaction was saved.
pub struct TenantTx {
    conn: Option<Object<PgManager>>,
    farm_id: Uuid,
    state: AtomicU8,
    round_trips: Arc<AtomicU64>,
    /// Statements sent and not yet answered: statements polled together (pipelined) share
    /// one round trip, so only the first of a batch counts one.
    in_flight: AtomicU32,
}

/// Counts a round trip when a statement starts with none in flight; leaves on drop.
struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    fn enter(in_flight: &'a AtomicU32, round_trips: &AtomicU64) -> InFlight<'a> {
        if in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            round_trips.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TenantTx {
    /// A transaction on `conn` for `farm_id`; nothing is sent until the first statement.
    pub(super) fn new(
        conn: Object<PgManager>,
        farm_id: Uuid,
        round_trips: Arc<AtomicU64>,
    ) -> TenantTx {
        TenantTx {
            conn: Some(conn),
            farm_id,
            state: AtomicU8::new(NOT_BEGUN),
            round_trips,
            in_flight: AtomicU32::new(0),
        }
    }

    pub fn farm_id(&self) -> Uuid {
        self.farm_id
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.conn
            .as_ref()
            .expect("connection present until the transaction ends")
    }

    fn begin_sql(&self) -> String {
        // farm_id is a Uuid: its text form is hex and dashes, safe to inline.
        format!(
            "BEGIN; SELECT set_config('app.farm_id', '{}', true)",
            self.farm_id
        )
    }

    /// Runs one statement (unnamed, typed parameters). The first statement carries the
    /// `BEGIN` and the tenant setting in the same round trip.
    pub async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let client = self.client();
        let _in_flight = InFlight::enter(&self.in_flight, &self.round_trips);
        let result =
            match self
                .state
                .compare_exchange(NOT_BEGUN, OPEN, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let begin = self.begin_sql();
                    let (began, rows) = futures::join!(
                        client.batch_execute(&begin),
                        client.query_typed(sql, params)
                    );
                    began.and(rows)
                }
                Err(state @ (FAILED | BROKEN)) => return Err(already_failed(state, "statement")),
                Err(FINISHED) => {
                    return Err(Error::unexpected("statement on a finished transaction"));
                }
                Err(_) => client.query_typed(sql, params).await,
            };
        result.map_err(|e| {
            let e = Error::from(e);
            self.state.store(failed_state(&e), Ordering::Release);
            e
        })
    }

    pub async fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| Error::unexpected("statement returned no row"))
    }

    pub async fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params).await?;
        if rows.len() > 1 {
            return Err(Error::unexpected("statement returned more than one row"));
        }
        Ok(rows.pop())
    }

    /// Runs `statements` and commits, all in ONE round trip (with the `BEGIN` too if nothing
    /// was sent yet): the statements, then `COMMIT`, are pipelined. Row locks taken by the
    /// statements are released as soon as the server reaches the `COMMIT`, not a network hop
    /// later. If a statement fails the server turns the `COMMIT` into a rollback and the error
    /// comes back; nothing is saved.
    pub async fn commit_after(
        mut self,
        statements: &[(&str, &[Param<'_>])],
    ) -> Result<Vec<Vec<Row>>> {
        let client = self
            .conn
            .as_ref()
            .expect("connection present until the transaction ends");
        let begin = match self.state.swap(FINISHED, Ordering::AcqRel) {
            NOT_BEGUN => Some(self.begin_sql()),
            OPEN => None,
            state => return Err(already_failed(state, "commit")),
        };
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let queries = futures::future::join_all(
            statements
                .iter()
                .map(|(sql, params)| client.query_typed(sql, params)),
        );
        let (began, results, committed) = futures::join!(
            async {
                match &begin {
                    Some(sql) => client.batch_execute(sql).await,
                    None => Ok(()),
                }
            },
            queries,
            client.batch_execute("COMMIT"),
        );
        let outcome = began
            .and_then(|()| {
                results
                    .into_iter()
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .and_then(|rows| committed.map(|()| rows));
        match outcome {
            Ok(rows) => {
                self.release();
                Ok(rows)
            }
            Err(e) => {
                let e = Error::from(e);
                self.state.store(failed_state(&e), Ordering::Release);
                Err(e)
            }
        }
    }

    /// Commits. Deferred constraints (the ledger chain, draft links) are checked here, so a
    /// commit can fail with the database's refusal.
    pub async fn commit(mut self) -> Result<()> {
        match self.state.swap(FINISHED, Ordering::AcqRel) {
            NOT_BEGUN => Ok(()),
            OPEN => {
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                self.client().batch_execute("COMMIT").await
            }
            .map_err(|e| {
                let e = Error::from(e);
                self.state.store(failed_state(&e), Ordering::Release);
                e
            }),
            state => {
                self.state.store(
                    if state == BROKEN { BROKEN } else { FAILED },
                    Ordering::Release,
                );
                Err(already_failed(state, "commit"))
            }
        }
        .inspect(|_| self.release())
    }

    pub async fn rollback(mut self) -> Result<()> {
        if self.state.swap(FINISHED, Ordering::AcqRel) != NOT_BEGUN {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            self.client().batch_execute("ROLLBACK").await?;
        }
        self.release();
        Ok(())
    }

    /// Gives the connection back to the pool now.
    fn release(&mut self) {
        drop(self.conn.take());
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.state.load(Ordering::Acquire) == NOT_BEGUN {
            return; // nothing was sent: the connection is clean
        }
        match tokio::runtime::Handle::try_current() {
            // Roll back before the connection can serve anyone else.
            Ok(runtime) => {
                runtime.spawn(async move {
                    if conn.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(conn)); // broken: close it rather than reuse it
                    }
                });
            }
            // No runtime to roll back with: close the connection (the server rolls back).
            Err(_) => drop(Object::take(conn)),
        }
    }
}
