//! Accepting connections and serving them with hyper: what `axum::serve` does (its handling of
//! accept errors, HTTP/1 with upgrades, graceful shutdown that lets every open connection finish),
//! with one difference that the key API's hot path measures: each connection's task is polled
//! through [`Coalesced`].
//!
//! Why: over HTTP/1 hyper hands a request's body to the service through a channel from the
//! connection's own task, and reading the body wakes that same task (the channel's sender waits
//! for room). tokio re-queues a task woken while it runs as a yield, and a yield unparks another
//! worker to come and steal: a futex wake, a cross-CPU interrupt and two context switches on the
//! other core for every POST with a body, most of what such a request cost beyond a GET here
//! (BENCHMARKS.md, fourth pass). A wake that arrives while the connection is being polled only
//! needs the connection polled again, which [`Coalesced`] does at once, in the same turn.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

/// Serves connections from `listener`, each with the service `connection` makes for its peer,
/// until `shutdown` completes; then accepts no more and returns once every open connection has
/// finished its requests in flight.
pub async fn serve<M, S>(
    listener: TcpListener,
    mut connection: M,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    // Every connection holds a receiver of `close` until it ends; `signal` closes at shutdown.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = signal_tx.closed() => break,
        };
        let service = connection(peer)
            .map_request(|request: hyper::Request<Incoming>| request.map(Body::new));
        let service = TowerToHyperService::new(service);
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(Coalesced::new(async move {
            let builder = Builder::new(TokioExecutor::new());
            let mut served =
                pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
            let mut signalled = pin!(signal_tx.closed());
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = served.as_mut() => {
                        if let Err(err) = result {
                            tracing::trace!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut signalled, if !shutting_down => {
                        shutting_down = true;
                        served.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        }));
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// As `axum::serve` (after hyper 0.14): a peer that went away is nothing; anything else (out of
/// file descriptors) is logged and the next accept waits a second.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Not being polled: a wake goes to the task's waker.
const IDLE: u8 = 0;
/// Being polled: a wake is only noted.
const POLLING: u8 = 1;
/// Woken while being polled: the poll goes round once more.
const WOKEN: u8 = 2;
/// Rounds in one poll before a wake is left to the scheduler (so a future that keeps waking
/// itself still yields to others).
const MAX_ROUNDS: usize = 16;

/// A future polled with a waker of its own that turns a wake arriving while it is being polled
/// into one more round of the same poll, instead of a trip through the scheduler; a wake at any
/// other time reaches the task's waker as usual.
pub struct Coalesced<F> {
    inner: Pin<Box<F>>,
    shared: Arc<Shared>,
    waker: Waker,
}

struct Shared {
    state: AtomicU8,
    /// The waker of the task polling this future, last seen.
    task: Mutex<Option<Waker>>,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            // Noted: the poll in progress goes round again.
            Ok(_) | Err(WOKEN) => {}
            Err(_) => {
                let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(task) = task.as_ref() {
                    task.wake_by_ref();
                }
            }
        }
    }
}

impl<F: Future> Coalesced<F> {
    pub fn new(future: F) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        Self {
            inner: Box::pin(future),
            waker: Waker::from(Arc::clone(&shared)),
            shared,
        }
    }
}

impl<F: Future> Future for Coalesced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            let mut task = this
                .shared
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_ROUNDS {
            this.shared.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(output) = this.inner.as_mut().poll(&mut inner_cx) {
                this.shared.state.store(IDLE, Ordering::Release);
                return Poll::Ready(output);
            }
            // A wake from here on reaches the task; one that came during the poll is ours.
            if this.shared.state.swap(IDLE, Ordering::AcqRel) != WOKEN {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes that reach it.
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Pending until polled `rounds` times, waking itself on each of those polls.
    struct WakesItself {
        polls: usize,
        rounds: usize,
    }

    impl Future for WakesItself {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls >= self.rounds {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(
        future: &mut Coalesced<F>,
        task: &Arc<CountingWaker>,
    ) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(task));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_wake_during_the_poll_is_one_more_round_not_a_wake_of_the_task() {
        let task = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let mut future = Coalesced::new(WakesItself {
            polls: 0,
            rounds: 3,
        });
        assert_eq!(poll_once(&mut future, &task), Poll::Ready(3));
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_still_yields_to_the_scheduler() {
        let task = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let mut future = Coalesced::new(WakesItself {
            polls: 0,
            rounds: MAX_ROUNDS * 2,
        });
        assert_eq!(poll_once(&mut future, &task), Poll::Pending);
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "woken to be polled again later"
        );
        assert_eq!(poll_once(&mut future, &task), Poll::Ready(MAX_ROUNDS * 2));
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let task = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let (sender, receiver) = tokio::sync::oneshot::channel::<u8>();
        let mut future = Coalesced::new(receiver);
        assert!(poll_once(&mut future, &task).is_pending());
        sender.send(7).unwrap();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll_once(&mut future, &task), Poll::Ready(Ok(7))));
    }
}
