"""The tutorial's recipe as written there: rgsync's RGJSONWriteBehind with its MongoConnector.

The yardstick for our recipe: the honesty tests show how it fails, the benchmarks how fast it
is. Format with `url` (MongoDB as Redis reaches it) and `db`.
"""

STOCK_RECIPE = """\
from rgsync import RGJSONWriteBehind, RGJSONWriteThrough
from rgsync.Connectors import MongoConnector, MongoConnection

mongoUrl = {url!r}
connection = MongoConnection('', '', '', '', mongoUrl)
db = {db!r}
movieConnector = MongoConnector(connection, db, 'movies', 'movieId')
RGJSONWriteBehind(GB,  keysPrefix='MovieEntity',
                  connector=movieConnector, name='MoviesWriteBehind',
                  version='99.99.99')
"""
# rgsync's own pin, pymongo 4.1.1, cannot talk to servers needing wire version 17+.
STOCK_REQUIREMENTS = ("rgsync", "pymongo==4.7.3")
