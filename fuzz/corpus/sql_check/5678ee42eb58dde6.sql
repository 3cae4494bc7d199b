SELECT E's3cr3t
', U&'s3cr3t', N's3cr3t', X'BEEF', B'1010', $$s3cr3t$$, $tag$s3cr3t$tag$ FROM t