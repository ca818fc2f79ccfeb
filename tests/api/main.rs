//! The black-box specification of chatbotd: every test starts the real binary on ephemeral ports
//! over a fresh data directory and talks to it over real sockets, REST and gRPC.
//! Set `TEST_LOG=1` to see the server's logs.

mod admin;
mod auth;
mod avatars;
mod changes;
mod crash_loop;
mod create;
mod durability;
mod failover;
mod fairness;
mod flags;
mod grpc;
mod helpers;
mod history;
mod hostile;
mod idempotency;
mod lifecycle;
mod migration;
mod openapi;
mod operations;
mod outage;
mod public;
mod public_cache;
mod races;
mod readme;
mod replicas;
mod retries;
mod secrets;
mod shares;
mod text;
mod tls;
mod unknown_commit;
mod widgets;
