"""Writes python/ember/datasets/data/movie_review_snippets.tsv.xz from the vaderSentiment 3.3.2
source distribution (see data/MOVIE_SNIPPETS_LICENSE.txt):

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2
    python tools/make_movie_snippets.py vaderSentiment-3.3.2.tar.gz
"""
import io
import lzma
import os
import sys
import tarfile

MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
OUT = os.path.join(os.path.dirname(__file__), "..", "python", "ember", "datasets", "data",
                   "movie_review_snippets.tsv.xz")


def snippets(sdist):
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        text = inner.extractfile(MEMBER).read().decode("utf-8")
    for line in text.splitlines():
        if line.strip():
            _, score, sentence = line.split("\t")
            yield float(score), sentence


if __name__ == "__main__":
    body = "score\ttext\n" + "".join(f"{s:.4g}\t{t}\n" for s, t in snippets(sys.argv[1]))
    tmp = OUT + ".tmp"
    with open(tmp, "wb") as f:
        f.write(lzma.compress(body.encode("utf-8"), preset=9))
    os.replace(tmp, OUT)
