//! The NATS side of `--nats URL`, shared by the examples that can run their flow either in
//! memory, on Redis or on NATS JetStream (each includes this file with
//! `#[path = "../support/nats_backend.rs"] mod nats_backend;`).

use necrostack::{NatsBackend, Uuid};

/// The NATS option, flattened into an example's command line (an example that also takes
/// `--redis` makes the two exclusive with an argument group).
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// Run the flow on NATS JetStream at URL (e.g. nats://127.0.0.1:4222) instead of in memory
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
}

/// Connects to NATS at `url` for the example called `example`, on a fresh stream
/// `<EXAMPLE>_<uuid>` (memory storage: the run's events are not worth a disk), so that a
/// rerun never sees the events of an earlier one. The durable consumer is `example`.
pub async fn connect(example: &str, url: &str) -> Result<NatsBackend, necrostack::Error> {
    let stream = format!("{}_{}", example.to_uppercase(), Uuid::now_v7().simple());
    tracing::info!(%stream, "running on NATS");
    let backend = NatsBackend::builder(url)
        .stream(stream)
        .consumer(example)
        .storage(necrostack::backend::nats::Storage::Memory)
        .build()
        .await?;
    Ok(backend)
}

/// After the run: closes the backend and deletes the run's streams (events, scheduled,
/// dead letters). A failure here is logged, not fatal: the run's results are already out.
pub async fn clean_up(backend: &NatsBackend, url: &str) {
    use necrostack::Backend;
    if let Err(error) = backend.close().await {
        tracing::warn!(%error, "could not close the NATS backend");
    }
    let config = backend.config();
    let streams = [
        config.stream().to_owned(),
        config.scheduled_stream(),
        config.dead_letter_stream(),
    ];
    let deleted = async {
        let client = async_nats::connect(url).await?;
        let js = async_nats::jetstream::new(client);
        for stream in &streams {
            js.delete_stream(stream).await?;
        }
        Ok::<_, async_nats::Error>(())
    };
    match deleted.await {
        Ok(()) => tracing::info!(?streams, "deleted the run's streams"),
        Err(error) => tracing::warn!(?streams, %error, "could not delete the run's streams"),
    }
}
