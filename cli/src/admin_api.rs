//! A client of a node's operator endpoints (`/admin/v1/…`), on its admin listener
//! (`admin_listen`: the Unix socket `DIR/admin.sock` by default, or a TCP address).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use renkei_node::config::{ADMIN_TOKEN_FILE, AdminAddr, NodeConfig};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};

/// The admin API of the node in one directory.
pub struct Admin {
    client: Client,
    base: String,
    token: String,
}

impl Admin {
    /// For the node in `dir`, with a 120 s timeout.
    pub fn open(dir: &Path) -> Result<Admin> {
        Admin::with_timeout(dir, Some(Duration::from_secs(120)))
    }

    /// For the node in `dir`; `None`: no timeout (a backup of a large store).
    pub fn with_timeout(dir: &Path, timeout: Option<Duration>) -> Result<Admin> {
        let cfg = NodeConfig::load(dir)?;
        let token = std::fs::read_to_string(dir.join(ADMIN_TOKEN_FILE))
            .context("reading the admin token")?
            .trim()
            .to_owned();
        let builder = Client::builder().timeout(timeout);
        let (builder, base) = match cfg.admin_addr(dir) {
            AdminAddr::Unix(path) => (builder.unix_socket(path), "http://admin".to_owned()),
            AdminAddr::Tcp(a) => (builder, format!("http://{a}")),
        };
        Ok(Admin {
            client: builder.build()?,
            base,
            token,
        })
    }

    /// A request to `path` (`/admin/v1/…`) carrying the admin token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }
}
