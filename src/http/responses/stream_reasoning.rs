//! The reasoning part of the Responses state machine (a child of `stream`, so it shares its
//! state): one `reasoning` item per thinking block, opened by the block's first text and ended by
//! the next item or the end. Its summary events (`reasoning_summary_part.added` →
//! `reasoning_summary_text.delta`* → `.done` → `reasoning_summary_part.done`) come only when the
//! request set `reasoning.summary`, so Claude's thinking is shown only when asked for and never in
//! `output_text`. When the request asked for reasoning and Claude did not think, an empty item
//! still comes first (clients such as Codex wait for one).

use crate::chat::types::ReasoningDelta;

use super::super::seal::{SealKey, SealedThinking};
use super::super::types::{EventPayload, OutputItem, ReasoningItem, StreamEvent, SummaryText};
use super::{Open, ResponseStream};

/// What the request asked of reasoning.
#[derive(Debug, Clone, Default)]
pub struct ReasoningOptions {
    /// `reasoning` was set (an effort or a summary): a reasoning item comes first in any case.
    pub requested: bool,
    /// `reasoning.summary` was set: the thinking text is the item's summary.
    pub summary: bool,
    /// `include: ["reasoning.encrypted_content"]`: the key to seal with.
    pub seal: Option<SealKey>,
}

impl ResponseStream {
    /// A piece of a thinking block: text extends the open reasoning item (or opens one; a block
    /// whose signature came is complete, so more text is a new block), a signature ends it.
    pub(super) fn reasoning(&mut self, delta: ReasoningDelta, out: &mut Vec<StreamEvent>) {
        match delta {
            ReasoningDelta::Text(text) if text.is_empty() => {}
            ReasoningDelta::Text(text) => {
                if !matches!(
                    self.open,
                    Some(Open::Reasoning {
                        signature: None,
                        ..
                    })
                ) {
                    self.close("completed", out);
                    self.open_reasoning(self.options.summary, out);
                }
                if let Some(Open::Reasoning { thinking, .. }) = &mut self.open {
                    thinking.push_str(&text);
                }
                if self.options.summary {
                    let (item_id, output_index) = self.open_item();
                    self.emit(
                        out,
                        EventPayload::ReasoningSummaryTextDelta {
                            item_id,
                            output_index,
                            summary_index: 0,
                            delta: text,
                        },
                    );
                }
            }
            ReasoningDelta::Signature {
                signature: sig,
                model,
            } => match &mut self.open {
                Some(Open::Reasoning { signature, .. }) => *signature = Some((sig, model)),
                _ => tracing::warn!("a thinking signature outside a thinking block dropped"),
            },
            // Encrypted thinking has no text for a summary, and a reasoning item's
            // `encrypted_content` is this gateway's sealed thinking; the block is not shown.
            ReasoningDelta::Redacted { .. } => {}
        }
    }

    /// Before the first item of the answer: the empty reasoning item a request that asked for
    /// reasoning gets even when Claude did not think.
    pub(super) fn reasoning_first(&mut self, out: &mut Vec<StreamEvent>) {
        if self.options.requested && !self.reasoned && self.open.is_none() {
            // No thinking, so no summary part either.
            self.open_reasoning(false, out);
            self.close("completed", out);
        }
    }

    fn open_reasoning(&mut self, summary_part: bool, out: &mut Vec<StreamEvent>) {
        self.reasoned = true;
        let item = OutputItem::Reasoning(ReasoningItem {
            id: (self.ids)("rs"),
            summary: Vec::new(),
            encrypted_content: None,
        });
        let (item_id, output_index) = (item.id().to_string(), self.output_index());
        self.response.output.push(item.clone());
        self.open = Some(Open::Reasoning {
            thinking: String::new(),
            signature: None,
        });
        self.emit(out, EventPayload::OutputItemAdded { output_index, item });
        if summary_part {
            self.emit(
                out,
                EventPayload::ReasoningSummaryPartAdded {
                    item_id,
                    output_index,
                    summary_index: 0,
                    part: SummaryText::new(String::new()),
                },
            );
        }
    }

    /// The `…done` events of the reasoning item's summary, before its `output_item.done`.
    pub(super) fn close_summary(
        &mut self,
        item: &ReasoningItem,
        output_index: u32,
        out: &mut Vec<StreamEvent>,
    ) {
        let Some(part) = item.summary.first() else {
            return;
        };
        self.emit(
            out,
            EventPayload::ReasoningSummaryTextDone {
                item_id: item.id.clone(),
                output_index,
                summary_index: 0,
                text: part.text.clone(),
            },
        );
        self.emit(
            out,
            EventPayload::ReasoningSummaryPartDone {
                item_id: item.id.clone(),
                output_index,
                summary_index: 0,
                part: part.clone(),
            },
        );
    }

    /// The final form of a reasoning item: the summary when asked for, the sealed thinking when
    /// asked for and the block is whole (signed).
    pub(super) fn finalize_reasoning(
        &self,
        item: &mut ReasoningItem,
        thinking: String,
        signature: Option<(String, String)>,
    ) {
        item.encrypted_content = match (&self.options.seal, signature) {
            (Some(key), Some((signature, model))) if !thinking.is_empty() => {
                let sealed = key.seal(&SealedThinking {
                    thinking: thinking.clone(),
                    signature,
                    model,
                });
                if sealed.is_none() {
                    tracing::warn!("reasoning could not be sealed; encrypted_content left out");
                }
                sealed
            }
            _ => None,
        };
        if self.options.summary && !thinking.is_empty() {
            item.summary = vec![SummaryText::new(thinking)];
        }
    }
}
