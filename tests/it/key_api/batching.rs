//! The key API's lookups share queries: lookups that arrive while every lane is busy go into the
//! next query together and each still gets its own key; a query that hangs frees its lane.

use std::sync::Arc;
use std::time::Duration;

use gatehouse::db::verification::LookupConnections;
use gatehouse::domain::keys::format::hash;
use gatehouse::vocabulary::Environment;
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
async fn a_hung_query_frees_its_lane_and_lookups_whose_callers_gave_up_cost_nothing() {
    let cluster = crate::support::clusters::Cluster::start_new();
    let pool = cluster.production_pool().await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let secret_hash = hash(&key);
    let lookups = Arc::new(LookupConnections::new(pool.clone(), 1));
    let lookup = |give_up_after: Duration| {
        let lookups = Arc::clone(&lookups);
        tokio::spawn(async move {
            tokio::time::timeout(give_up_after, lookups.find_by_hash(&secret_hash)).await
        })
    };

    // Reads of api_key wait while this transaction holds its lock: the only lane's query hangs.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE api_key IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let hung = lookup(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Queued behind it, callers that give up long before the lane is free again.
    let impatient: Vec<_> = (0..5).map(|_| lookup(Duration::from_millis(200))).collect();
    for gave_up in impatient {
        assert!(gave_up.await.unwrap().is_err(), "nothing can be read yet");
    }
    let started = std::time::Instant::now();
    let answer = hung
        .await
        .unwrap()
        .expect("the lane answers within its own bound");
    assert!(answer.is_err(), "a hung query is an error, never a guess");
    assert!(started.elapsed() < Duration::from_secs(5));

    lock.commit().await.unwrap();
    let found = lookup(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("answered once the database answers")
        .expect("the lookup succeeds on a new connection");
    assert_eq!(found.map(|row| row.api_key_id), Some(id));
    let (queries, answered) = lookups.queries_and_lookups();
    assert_eq!(
        (queries, answered),
        (2, 1),
        "the lookups whose callers gave up were never queried; the hung one was not answered by a row"
    );
}
