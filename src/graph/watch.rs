//! A stage or sink task that ends while the pipeline runs — a panic, a bug —
//! stops the whole pipeline, and the run ends in error.
//!
//! Without this the runner would stay up and look healthy while one of its
//! paths no longer commits anything: the messages behind the dead task are
//! never acknowledged and nothing says so until the broker's queue fills.
//! Stopping instead lets the drain settle what can be settled, makes the
//! process exit non-zero for its supervisor to restart, and leaves every
//! unacknowledged message with the broker for redelivery. Each task holds a
//! [`TaskGuard`]; the guard notices the end when it is dropped, which also
//! happens when the task unwinds from a panic.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Watches the pipeline's tasks; `stop` is what the source watches.
#[derive(Debug, Clone)]
pub struct TaskWatch {
    stop: CancellationToken,
    first_ended: Arc<Mutex<Option<String>>>,
}

impl TaskWatch {
    /// A watch that cancels `stop` when a guarded task ends before `stop`
    /// was cancelled.
    pub fn new(stop: CancellationToken) -> TaskWatch {
        TaskWatch {
            stop,
            first_ended: Arc::default(),
        }
    }

    /// `task` (the future of the task named `name`, e.g. `sink ts_measure`),
    /// holding its guard for as long as it runs.
    pub fn guarded<F: Future>(&self, name: String, task: F) -> impl Future<Output = F::Output> {
        let guard = self.guard(name);
        async move {
            let _guard = guard;
            task.await
        }
    }

    /// A guard for the task named `task`, to be moved into it.
    fn guard(&self, task: String) -> TaskGuard {
        TaskGuard {
            task,
            watch: self.clone(),
        }
    }

    /// The first task that ended while the pipeline was running, if any.
    pub fn ended_early(&self) -> Option<String> {
        self.first_ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Held by one task for its whole life; see the module documentation.
#[derive(Debug)]
pub struct TaskGuard {
    task: String,
    watch: TaskWatch,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.watch.stop.is_cancelled() {
            return; // the pipeline is stopping: tasks end as their inputs close
        }
        tracing::error!(
            task = %self.task, panicked = std::thread::panicking(),
            "a pipeline task ended while the pipeline was running; stopping the pipeline \
             (unacknowledged messages stay with the broker and are redelivered)"
        );
        self.watch
            .first_ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| self.task.clone());
        self.watch.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_end_stops_the_pipeline_and_is_named() {
        let watch = TaskWatch::new(CancellationToken::new());
        drop(watch.guard("stage a".into()));
        drop(watch.guard("sink b".into()));
        assert!(watch.stop.is_cancelled());
        assert_eq!(watch.ended_early().as_deref(), Some("stage a"));
    }

    #[test]
    fn an_end_after_stop_is_normal() {
        let stop = CancellationToken::new();
        let watch = TaskWatch::new(stop.clone());
        let guard = watch.guard("sink b".into());
        stop.cancel();
        drop(guard);
        assert_eq!(watch.ended_early(), None);
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_pipeline() {
        let watch = TaskWatch::new(CancellationToken::new());
        let task = tokio::spawn(watch.guarded("sink ts_measure".into(), async {
            panic!("a bug");
        }));
        assert!(task.await.is_err(), "the task panicked");
        assert!(watch.stop.is_cancelled());
        assert_eq!(watch.ended_early().as_deref(), Some("sink ts_measure"));
    }
}
