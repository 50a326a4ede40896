"""The TF-IDF peer of `kft-benchmark accuracy` (scikit-learn): the
classical baseline a careful user would try first."""


def classify(train, scored, seed):
    """TF-IDF of word 1-2 grams and a logistic regression whose C is
    chosen by 5-fold cross-validation on the training examples (macro-F1,
    kft's default monitor), as a careful user of scikit-learn would."""
    import warnings

    from sklearn import metrics
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    def text(row):
        pair = row.get("text_pair")
        return row["text"] + (" | " + pair if pair else "")

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegressionCV(
            Cs=8,
            cv=5,
            # Not "f1_macro": that string fails on two string classes.
            scoring=metrics.make_scorer(metrics.f1_score, average="macro"),
            max_iter=2000,
            random_state=seed,
        ),
    )
    # scikit-learn's notices of new defaults, and of pos_label ignored by a
    # macro average, once per fold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "Note that pos_label", UserWarning)
        model.fit([text(r) for r in train], [str(r["label"]) for r in train])
        return list(model.predict([text(r) for r in scored]))
