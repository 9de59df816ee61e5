//! The key API's lookups share queries: lookups that arrive while every lane is busy go into the
//! next query together, each still gets its own key, and a batch whose leader goes away mid-query
//! loses no one else's lookup.

use std::sync::Arc;
use std::time::Duration;

use gatehouse::db::verification::LookupConnections;
use gatehouse::domain::key_format::hash;
use gatehouse::domain::vocabulary::Environment;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::fixtures::Tenant;

#[sqlx::test]
async fn concurrent_lookups_share_queries_and_each_gets_its_own_key(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let mut keys: Vec<(String, Option<Uuid>)> = Vec::new();
    for _ in 0..40 {
        let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
        keys.push((key, Some(id)));
    }
    for n in 0..10 {
        keys.push((format!("ak_live_unknown{n}"), None));
    }
    let lookups = Arc::new(LookupConnections::new(pool.clone(), 2));
    // Every key five times over, interleaved, all at once.
    let asked: Vec<(String, Option<Uuid>)> = (0..5).flat_map(|_| keys.clone()).collect();
    let running: Vec<_> = asked
        .iter()
        .map(|(key, _)| {
            let lookups = Arc::clone(&lookups);
            let secret_hash = hash(key);
            tokio::spawn(async move { lookups.find_by_hash(&secret_hash).await })
        })
        .collect();
    for ((key, expected), answer) in asked.iter().zip(running) {
        let found = answer.await.unwrap().expect("the lookup succeeds");
        assert_eq!(
            found.map(|row| row.api_key_id),
            *expected,
            "the lookup of {key} found another key"
        );
    }
    let (queries, answered) = lookups.queries_and_lookups();
    assert_eq!(answered, asked.len() as u64);
    assert!(
        queries < answered / 2,
        "{answered} concurrent lookups took {queries} queries: they did not share them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_whose_batch_leader_goes_away_is_answered_by_a_later_batch() {
    let cluster = crate::support::clusters::Cluster::start_new();
    let pool = cluster.production_pool().await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let secret_hash = hash(&key);
    let lookups = Arc::new(LookupConnections::new(pool.clone(), 1));

    // Reads of api_key wait while this transaction holds its lock.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE api_key IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let lookup = |give_up_after: Duration| {
        let lookups = Arc::clone(&lookups);
        tokio::spawn(async move {
            tokio::time::timeout(give_up_after, lookups.find_by_hash(&secret_hash)).await
        })
    };
    // The first takes the only lane and waits on the lock; the second and third queue behind
    // it. When the first gives up, the second leads a batch holding the third, and gives up
    // mid-query too: the third must queue again and be answered once the lock is gone.
    let first = lookup(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = lookup(Duration::from_millis(700));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = lookup(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(first.await.unwrap().is_err(), "the first gave up");
    assert!(second.await.unwrap().is_err(), "the second gave up");
    assert!(
        !third.is_finished(),
        "nothing can be read while the lock is held"
    );
    lock.commit().await.unwrap();
    let found = third
        .await
        .unwrap()
        .expect("answered well within its 30 s")
        .expect("the lookup succeeds");
    assert_eq!(found.map(|row| row.api_key_id), Some(id));
}
