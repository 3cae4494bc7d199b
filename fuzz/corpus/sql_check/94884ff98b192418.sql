select   a
from t -- a comment
where b = 2