//! # renkei-tests
//!
//! End-to-end tests of real `renkei` processes over loopback sockets live in `tests/it/`.
//! This library holds helpers shared by those tests.
