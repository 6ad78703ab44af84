//! Integration tests: a real server started in-process on 127.0.0.1:0,
//! driven with raw sockets and a third-party client (suppaftp). Tests of
//! protocol behaviour run on both storage backends (`name::local`,
//! `name::memory`); those about the local filesystem itself run on it alone.

mod attacks;
mod commands;
mod data_connections;
mod events;
mod extensions;
mod faults;
mod helpers;
#[path = "../support/in_process.rs"]
mod in_process;
mod limits;
mod permissions;
mod robustness;
mod suppaftp_client;
mod transfers;
mod uploads;
