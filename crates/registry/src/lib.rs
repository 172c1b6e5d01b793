//! Berth's registry client: the client side of the
//! [OCI distribution spec](https://github.com/opencontainers/distribution-spec).
//!
//! [`Client`] talks to one registry: the `/v2/` ping, manifests by tag or
//! digest (digest-verified), blobs streamed into a
//! [`ContentStore`](berth_image::ContentStore) with their digest checked on
//! the way in, existence checks, monolithic blob uploads and manifest
//! pushes. Auth is anonymous, Basic, or the Bearer token flow
//! (`WWW-Authenticate` realm/service/scope, tokens cached per scope and
//! renewed once on a 401). Plain HTTP is used only for localhost,
//! 127.0.0.0/8, `::1` and registries listed as insecure; HTTPS (rustls with
//! the webpki roots) otherwise.

pub mod challenge;
mod client;
pub mod config;
pub mod error;
pub mod fetch;
pub mod pull;
pub mod push;

pub use client::{Client, ClientOptions, Credentials, FetchedManifest, MANIFEST_ACCEPT, next_link};
pub use config::{AuthFile, RegistriesConfig};
pub use error::{Error, Result};
pub use fetch::{Fetched, fetch};
pub use pull::{ChannelReader, LayerState, NoProgress, Progress, PullOptions, Pulled, pull};
pub use push::{BlobPush, NoPushProgress, PushProgress, Pushed, push};
