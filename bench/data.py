"""Movie-like demo records, the shape `make seed` loads (deploy/seed.py)."""
import json

GENRES = ["Drama", "Comedy", "Thriller", "Action", "Romance", "Horror", "Documentary", "Sci-Fi", "Animation", "Crime"]


def movie(n):
    """The data of demo item n, as a dict."""
    return {"title": f"Movie {n}", "year": 1920 + n % 105, "genres": [GENRES[n % 10], GENRES[n * 7 % 10]],
            "rating": round(1 + (n * 7919 % 90) / 10, 1), "votes": n * 37 % 100000,
            "runtime_min": 80 + n % 100, "director": f"Director {n % 5000}"}


def movie_json(n):
    """The data of demo item n as compact JSON text."""
    return json.dumps(movie(n), separators=(",", ":"))
