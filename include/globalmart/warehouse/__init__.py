"""The daily batch's warehouse model: pure Spark DataFrame transforms from the lake's events.

``star`` builds the star schema (``fact_sales`` and its dimensions), ``rfm`` the customer
segments, ``products`` the daily product performance and ``trends`` the sales trends. Each
transform takes DataFrames (and settings values) and returns a DataFrame; reading the lake
and writing MongoDB belong to the batch jobs that call them.
"""
