//! Remote images, when the operator allows them (`--fetch-images`). Validation keeps each
//! `http(s)` image of a user turn as a `Block::RemoteImage` (counted against `--max-images` like
//! any image; images elsewhere are refused there), so nothing is downloaded for a request that
//! is invalid, names an unknown model or is never admitted. Once the engine holds the request's
//! process permit, `fetch_remote_images` downloads them within a per-request budget (count,
//! total bytes, total time, a few at once) and replaces each by a base64 image block.
//!
//! `address` decides which addresses may be reached, `client` makes one download on the
//! request's pinned-resolver client.

mod address;
mod client;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

pub use address::is_public;
use client::{Downloader, image_error};

use crate::chat::ChatError;
use crate::chat::validate::{Block, ValidChatRequest};

/// The error code of a request over its download budget.
pub const BUDGET_CODE: &str = "image_fetch_budget_exceeded";

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub enabled: bool,
    /// Time limit of one image.
    pub timeout: Duration,
    /// Largest image, in bytes.
    pub max_bytes: usize,
    /// Allow loopback and private addresses (for tests on one machine only).
    pub allow_private: bool,
    pub budget: FetchBudget,
}

/// What one request may download in all.
#[derive(Debug, Clone, Copy)]
pub struct FetchBudget {
    pub max_count: usize,
    pub max_total_bytes: usize,
    pub total_timeout: Duration,
    /// Downloads in flight at once.
    pub concurrency: usize,
}

impl Default for FetchBudget {
    fn default() -> Self {
        FetchBudget {
            max_count: 8,
            max_total_bytes: 20 * 1024 * 1024,
            total_timeout: Duration::from_secs(30),
            concurrency: 4,
        }
    }
}

/// Downloads every remote image of `req` into a base64 image block. Call it only for an
/// admitted request: it is the one step of a request that reaches out to other servers.
pub async fn fetch_remote_images(
    req: &mut ValidChatRequest,
    cfg: &FetchConfig,
) -> Result<(), ChatError> {
    let mut slots: Vec<&mut Block> = req
        .history
        .iter_mut()
        .chain(std::iter::once(&mut req.prompt))
        .flat_map(|turn| turn.blocks.iter_mut())
        .filter(|block| matches!(block, Block::RemoteImage { .. }))
        .collect();
    let jobs: Vec<(String, String)> = slots
        .iter()
        .filter_map(|block| match &**block {
            Block::RemoteImage { url, param } => Some((url.clone(), param.clone())),
            _ => None,
        })
        .collect();
    let Some((_, first_param)) = jobs.first() else {
        return Ok(());
    };
    if !cfg.enabled {
        return Err(image_error(
            first_param,
            "fetching remote images is turned off on this gateway".into(),
        ));
    }
    let budget = cfg.budget;
    if let Some((_, param)) = jobs.get(budget.max_count) {
        return Err(ChatError::invalid_with_code(
            format!(
                "The request has {} remote images; this gateway fetches at most {} per request \
                 (--fetch-images-max-count). Send the others inline as data URLs.",
                jobs.len(),
                budget.max_count
            ),
            param.clone(),
            BUDGET_CODE,
        ));
    }
    let downloader = Downloader::new(cfg.allow_private, cfg.max_bytes, budget.max_total_bytes)?;
    let downloads = futures::stream::iter(
        jobs.iter()
            .cloned()
            .map(|(url, param)| download(&downloader, url, param, cfg.timeout)),
    )
    .buffered(budget.concurrency.max(1))
    .try_collect::<Vec<Block>>();
    let images = tokio::time::timeout(budget.total_timeout, downloads)
        .await
        .map_err(|_| {
            ChatError::invalid_with_code(
                format!(
                    "Fetching the request's {} remote images took longer than {} s, this \
                     gateway's limit (--fetch-images-total-timeout-secs).",
                    jobs.len(),
                    budget.total_timeout.as_secs()
                ),
                first_param.clone(),
                BUDGET_CODE,
            )
        })??;
    for (slot, image) in slots.iter_mut().zip(images) {
        **slot = image;
    }
    Ok(())
}

/// One image within the per-image time limit.
async fn download(
    downloader: &Downloader,
    url: String,
    param: String,
    limit: Duration,
) -> Result<Block, ChatError> {
    tokio::time::timeout(limit, downloader.image(&url, &param))
        .await
        .map_err(|_| {
            image_error(
                &param,
                format!("fetching it took longer than {} s", limit.as_secs()),
            )
        })?
}
