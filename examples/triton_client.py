"""Stream N frames of several videos from a running `pomexport serve` and write them to mp4.

    pomexport serve-repo build/artifact --out build/repo --max-streams 8
    pomexport serve build/repo &
    python examples/triton_client.py --url 127.0.0.1:8001 --protocol grpc \\
        --label 3 --label 5 --label 7 --frames 16 --out clips.mp4

Each video is one Triton sequence (correlation ID) requested from its own thread, so the
requests of the videos interleave and the server batches them into one generator step.
The mp4 shows the videos side by side (pomexport's video writer).
"""

from __future__ import annotations

import click
import torch

from pomexport.runtime.serving.client import StreamSpec, stream_videos
from pomexport.runtime.writers import write_video


@click.command()
@click.option("--url", default="127.0.0.1:8000", show_default=True, help="host:port of Triton.")
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@click.option("--label", "-l", "labels", type=int, multiple=True, help="One video per label.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--frames", "-n", type=int, default=16, show_default=True)
@click.option("--out", "-o", default="triton_clips.mp4", show_default=True)
@click.option("--first-id", type=int, default=1, show_default=True, help="First sequence ID.")
def main(
    url: str,
    protocol: str,
    labels: tuple[int, ...],
    seed: int,
    frames: int,
    out: str,
    first_id: int,
) -> None:
    """Stream the videos concurrently, then write them side by side to OUT."""
    specs = [StreamSpec(label, seed=seed, stream=i) for i, label in enumerate(labels or (0, 1))]
    clips = stream_videos(url, specs, frames, protocol, first_sequence_id=first_id)
    written = write_video(torch.from_numpy(clips), out)
    click.echo(f"{len(specs)} videos x {frames} frames -> {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
