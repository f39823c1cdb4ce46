//! The `retriever-backend.answer` resource: a search answer's hits, held by the host for the
//! rest of the call, so that `result-cache.put-answer` keeps them without the guest sending them
//! back out of the sandbox (docs/decisions/0004-answers-by-handle.md: that crossing cost about
//! 11% of a search call's instructions).
//! The hits are shared, not copied: the guest's copy is lowered from the same allocation.

use std::sync::Arc;

use wasmtime::component::{ComponentType, Lower, Resource};

use crate::bindings::vector_service::plugin::retriever_backend::BackendHit;

/// A backend's hits, shared between the answer the host keeps and the guest's copy.
pub(crate) type SharedHits = Arc<Vec<BackendHit>>;

/// The WIT's `backend-hits` as the `search` import lowers it: from the shared hits, by
/// reference (the generated type would own, so keeping the hits would cost a deep copy).
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct FoundHits {
    pub(crate) hits: SharedHits,
    pub(crate) confidence: Option<f64>,
}

/// One answer the guest holds a handle on.
pub struct Answer {
    /// The hits, kept only when the tenant's cache is on (else nothing could use them).
    hits: Option<SharedHits>,
}

impl Answer {
    /// An answer keeping `hits` when `kept`.
    pub(crate) fn new(hits: &SharedHits, kept: bool) -> Self {
        Self {
            hits: kept.then(|| hits.clone()),
        }
    }

    /// Its hits, taken out (a handle is put into the cache at most once usefully).
    pub(crate) fn take_hits(&mut self) -> Option<SharedHits> {
        self.hits.take()
    }
}

/// At most this many answers live at once per store. Our guest holds one at a time; a guest
/// that keeps every answer of a search loop is stopped here, not by the host's memory.
pub const MAX_HELD_ANSWERS: usize = 8;

/// The trap a call gets when its guest holds more than [`MAX_HELD_ANSWERS`] answers.
#[derive(Debug, thiserror::Error)]
#[error("the component holds more than {MAX_HELD_ANSWERS} search answers at once")]
pub struct TooManyAnswers;

/// The answers of one store, by the handle's representation (a slot index).
#[derive(Default)]
pub(crate) struct Answers {
    slots: Vec<Option<Answer>>,
}

impl Answers {
    /// Hold `answer` and give the guest its handle.
    pub(crate) fn hold(&mut self, answer: Answer) -> wasmtime::Result<Resource<Answer>> {
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.slots.len() < MAX_HELD_ANSWERS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(TooManyAnswers.into()),
        };
        self.slots[slot] = Some(answer);
        Ok(Resource::new_own(slot as u32))
    }

    /// The answer behind a handle the guest passed; `None` for a handle we never gave.
    pub(crate) fn get_mut(&mut self, handle: &Resource<Answer>) -> Option<&mut Answer> {
        self.slots.get_mut(handle.rep() as usize)?.as_mut()
    }

    /// The guest dropped its handle.
    pub(crate) fn release(&mut self, rep: u32) {
        if let Some(slot) = self.slots.get_mut(rep as usize) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(id: &str) -> SharedHits {
        Arc::new(vec![BackendHit {
            origin_db: "bot".into(),
            id: id.into(),
            record_id: None,
            score: 1.0,
            reason: String::new(),
            metadata: "{}".into(),
        }])
    }

    #[test]
    fn held_answers_are_bounded_and_their_slots_reused() {
        let mut answers = Answers::default();
        let handles: Vec<_> = (0..MAX_HELD_ANSWERS)
            .map(|n| {
                answers
                    .hold(Answer::new(&hits(&n.to_string()), true))
                    .unwrap()
            })
            .collect();
        let refused = answers.hold(Answer::new(&hits("9"), true)).unwrap_err();
        assert!(refused.downcast_ref::<TooManyAnswers>().is_some());

        let third = Resource::<Answer>::new_own(handles[2].rep());
        assert_eq!(
            answers.get_mut(&third).unwrap().take_hits().unwrap()[0].id,
            "2"
        );
        assert_eq!(answers.get_mut(&third).unwrap().take_hits(), None);
        answers.release(third.rep());
        let again = answers.hold(Answer::new(&hits("new"), false)).unwrap();
        assert_eq!(again.rep(), handles[2].rep());
        assert_eq!(answers.get_mut(&again).unwrap().take_hits(), None);
        assert!(answers.get_mut(&Resource::new_own(99)).is_none());
    }
}
