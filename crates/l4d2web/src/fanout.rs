//! The one fan-out of the web app: keyed topics (a job's log, a server's
//! live panel, a server's console), each a broadcast channel with an
//! optional backlog of its last items for late subscribers.
//!
//! A topic exists while someone subscribes to it; the last subscription
//! to go removes it, so a publisher can tell that nobody listens any more
//! ([`Fanout::is_open`]). Publishing to a topic nobody subscribed to costs
//! a map lookup and nothing else.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

/// Keyed broadcast topics; cheap to clone (one shared registry).
pub struct Fanout<K, T> {
    inner: Arc<Inner<K, T>>,
}

impl<K, T> Clone for Fanout<K, T> {
    fn clone(&self) -> Self {
        Fanout {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K, T> {
    topics: Mutex<HashMap<K, Arc<Topic<T>>>>,
    /// Items a slow subscriber may fall behind before it lags.
    capacity: usize,
    /// Items kept for late subscribers (0: none).
    backlog: usize,
    next_id: AtomicU64,
}

/// One incarnation of a topic: a key whose topic was closed or left gets a
/// new one, with a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicId(u64);

struct Topic<T> {
    id: TopicId,
    tx: broadcast::Sender<T>,
    /// Sending happens under this lock too, so a subscriber's backlog
    /// snapshot and its receiver neither miss nor repeat an item.
    backlog: Mutex<VecDeque<T>>,
}

/// One subscriber of one topic: what the backlog held when it joined, then
/// every later item. Dropping it leaves the topic (and removes the topic
/// when it was the last one).
pub struct Subscription<K: Eq + Hash + Clone, T: Clone> {
    pub backlog: Vec<T>,
    pub rx: broadcast::Receiver<T>,
    /// Whether this subscription created the topic (the first listener).
    pub first: bool,
    /// The topic joined (a publisher started for `first` serves this one).
    pub topic: TopicId,
    key: K,
    fanout: Fanout<K, T>,
}

impl<K: Eq + Hash + Clone, T: Clone> Drop for Subscription<K, T> {
    fn drop(&mut self) {
        // Our own receiver still counts until it is gone: replace it by a
        // fresh, closed-off one first.
        let (_, empty) = broadcast::channel(1);
        drop(std::mem::replace(&mut self.rx, empty));
        self.fanout.remove_if_unheard(&self.key);
    }
}

fn lock<V>(m: &Mutex<V>) -> MutexGuard<'_, V> {
    // Every critical section leaves the data consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Eq + Hash + Clone, T: Clone> Fanout<K, T> {
    /// `capacity`: how far a subscriber may fall behind; `backlog`: how
    /// many past items a new subscriber gets.
    pub fn new(capacity: usize, backlog: usize) -> Self {
        Fanout {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                backlog,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Joins topic `key`, creating it when nobody listens yet.
    pub fn subscribe(&self, key: K) -> Subscription<K, T> {
        let mut topics = lock(&self.inner.topics);
        let mut first = false;
        let topic = topics
            .entry(key.clone())
            .or_insert_with(|| {
                first = true;
                Arc::new(Topic {
                    id: TopicId(self.inner.next_id.fetch_add(1, Ordering::Relaxed)),
                    tx: broadcast::channel(self.inner.capacity).0,
                    backlog: Mutex::new(VecDeque::new()),
                })
            })
            .clone();
        // Still under the registry lock: a leaving subscriber cannot
        // remove the topic before this one counts.
        let backlog = lock(&topic.backlog);
        Subscription {
            backlog: backlog.iter().cloned().collect(),
            rx: topic.tx.subscribe(),
            first,
            topic: topic.id,
            key,
            fanout: self.clone(),
        }
    }

    /// Sends `item` to the subscribers of `key` (and its backlog). Returns
    /// false when the topic has no subscriber.
    pub fn publish(&self, key: &K, item: T) -> bool {
        self.publish_if(key, None, item)
    }

    /// Like [`Fanout::publish`], only to the incarnation `topic`: a
    /// publisher serving one topic never feeds its successor.
    pub fn publish_to(&self, key: &K, topic: TopicId, item: T) -> bool {
        self.publish_if(key, Some(topic), item)
    }

    fn publish_if(&self, key: &K, only: Option<TopicId>, item: T) -> bool {
        let Some(topic) = lock(&self.inner.topics).get(key).cloned() else {
            return false;
        };
        if only.is_some_and(|id| id != topic.id) {
            return false;
        }
        let mut backlog = lock(&topic.backlog);
        if self.inner.backlog > 0 {
            if backlog.len() == self.inner.backlog {
                backlog.pop_front();
            }
            backlog.push_back(item.clone());
        }
        let _ = topic.tx.send(item);
        true
    }

    /// Closes the topic: its subscribers receive `last` (if any), then
    /// `Closed`. The next subscriber starts a new topic.
    pub fn close(&self, key: &K, last: Option<T>) {
        self.close_if(key, None, last)
    }

    /// Like [`Fanout::close`], only if `topic` is still the current one.
    pub fn close_topic(&self, key: &K, topic: TopicId, last: Option<T>) {
        self.close_if(key, Some(topic), last)
    }

    fn close_if(&self, key: &K, only: Option<TopicId>, last: Option<T>) {
        let mut topics = lock(&self.inner.topics);
        if only.is_some_and(|id| topics.get(key).is_none_or(|t| t.id != id)) {
            return;
        }
        if let Some(topic) = topics.remove(key) {
            drop(topics);
            let _backlog = lock(&topic.backlog);
            if let Some(item) = last {
                let _ = topic.tx.send(item);
            }
        }
    }

    /// Whether anyone subscribes to `key`.
    pub fn is_open(&self, key: &K) -> bool {
        lock(&self.inner.topics).contains_key(key)
    }

    /// Whether `topic` is still the one of `key` (someone listens to it).
    pub fn is_current(&self, key: &K, topic: TopicId) -> bool {
        lock(&self.inner.topics)
            .get(key)
            .is_some_and(|t| t.id == topic)
    }

    /// Topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        lock(&self.inner.topics).len()
    }

    fn remove_if_unheard(&self, key: &K) {
        let mut topics = lock(&self.inner.topics);
        if topics.get(key).is_some_and(|t| t.tx.receiver_count() == 0) {
            topics.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn topics_live_as_long_as_their_subscribers() {
        let f: Fanout<u32, u32> = Fanout::new(8, 2);
        assert!(!f.publish(&1, 10), "nobody listens yet");
        let mut a = f.subscribe(1);
        assert!(a.first);
        assert!(f.publish(&1, 11));
        assert!(f.publish(&1, 12));
        assert!(f.publish(&1, 13));
        let b = f.subscribe(1);
        assert!(!b.first);
        assert_eq!(b.backlog, vec![12, 13], "the last two, in order");
        assert_eq!(a.rx.recv().await.unwrap(), 11);
        drop(b);
        assert!(f.is_open(&1), "a still listens");
        drop(a);
        assert!(!f.is_open(&1));
        assert_eq!(f.topic_count(), 0);
    }

    #[tokio::test]
    async fn close_delivers_the_last_item_then_ends() {
        let f: Fanout<&str, u32> = Fanout::new(8, 0);
        let mut s = f.subscribe("job");
        assert!(s.backlog.is_empty());
        f.close(&"job", Some(99));
        assert_eq!(s.rx.recv().await.unwrap(), 99);
        assert!(s.rx.recv().await.is_err());
        assert!(!f.is_open(&"job"));
        drop(s);
        assert_eq!(f.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_new_subscriber_after_close_gets_a_fresh_topic() {
        let f: Fanout<u8, u8> = Fanout::new(4, 4);
        let old = f.subscribe(7);
        f.publish(&7, 1);
        f.close(&7, None);
        let new = f.subscribe(7);
        assert!(new.first && new.backlog.is_empty());
        assert_ne!(new.topic, old.topic);
        assert!(
            !f.publish_to(&7, old.topic, 3),
            "the old publisher is not heard"
        );
        assert!(!f.is_current(&7, old.topic));
        f.close_topic(&7, old.topic, None);
        assert!(
            f.is_current(&7, new.topic),
            "closing the old topic leaves the new one"
        );
        drop(old);
        assert!(
            f.is_open(&7),
            "dropping the old subscription keeps the new topic"
        );
    }
}
