"""The vocabulary guard: words that are not people's names, however spaCy tags them.

spaCy's small model tags capitalised words as PERSON from their shape and position:
``String`` and ``Random`` in Java, ``Visa`` and ``Mastercard`` in banking questions,
``False`` as a one-word answer, ``Generate`` opening an instruction. This compact list
(programming words and type names, languages and tools, brands and products, and the
verbs and common words that open instructions and answers) is what a PERSON finding
made only of such words is checked against; a strong cue ("Mr.", "my name is", a name
field) still wins. Deliberately no common surnames (``Brown``, ``King``, ``Young``...):
a real name is never made only of these words, and months, seasons and
virtues that are given names (``April``, ``Autumn``, ``Hope``) are left out.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in text.split())


PROGRAMMING = _words(
    """
    True False None Null Nil Undefined NaN Infinity Void Self This Super Object String Str Int Integer Long Short Byte
    Char Character Boolean Bool Float Double Decimal Number Array Arrays ArrayList List LinkedList Map HashMap TreeMap
    Dict Dictionary Set HashSet Tuple Vector Queue Stack Deque Iterator Iterable Optional Stream Collections Collection
    Math Random Scanner System Exception Error RuntimeException ValueError TypeError KeyError IndexError Thread Runnable
    Main Program Console Date DateTime Calendar Timer File Path Buffer BufferedReader InputStream OutputStream Reader
    Writer Printer Node Tree Graph Matrix Table Column Row Index Key Value Item Element Entry Record Field Struct Class
    Interface Enum Module Package Function Method Lambda Callback Promise Future Task Async Await Request Response Client
    Server Handler Controller Service Repository Factory Builder Manager Helper Util Utils Config Settings Logger Log
    Test Tests Assert Mock Sample Example Demo Hello World Foo Bar Baz Qux Student Employee Person Customer User
    Account Order Product Item Shape Circle Rectangle Square Triangle Point Animal Dog Cat Car Vehicle Book Library
    Calculator Counter Solution Answer Output Input Result Results Data Dataset Model View Template Component App Application
    Java Python JavaScript TypeScript Ruby Rust Go Golang Kotlin Swift Scala Perl Php Haskell Lua Julia Dart Elixir Erlang
    Clojure Fortran Cobol Pascal Matlab Octave Bash Shell PowerShell Sql MySQL PostgreSQL Postgres SQLite Oracle MongoDB
    Redis Kafka Spark Hadoop Pandas NumPy SciPy Django Flask FastAPI Rails Laravel Spring React Angular Vue Svelte Node
    Express Docker Kubernetes Linux Unix Ubuntu Debian Windows Mac MacOS Android Ios Git GitHub GitLab Jupyter Html Css
    Json Xml Yaml Csv Api Rest Graphql Http Https Url Uri Regex Jquery Bootstrap Tailwind Webpack Babel Npm Pip Conda
    Maven Gradle Junit Pytest Selenium Tensorflow PyTorch Keras Sklearn Scikit Matplotlib Seaborn Plotly Excel Sheets
    """
)
BRANDS = _words(
    """
    Visa Mastercard Amex Maestro Discover Paypal Venmo Zelle Revolut Stripe Klarna Alipay Wechat Google Apple Microsoft
    Amazon Alexa Siri Cortana Bixby Samsung Galaxy Pixel Iphone Ipad Macbook Airpods Kindle Echo Nest Fitbit Garmin Sony
    PlayStation Xbox Nintendo Switch Netflix Spotify Hulu Disney Youtube Facebook Instagram Whatsapp Telegram Signal Slack
    Zoom Teams Skype Discord Twitter Tiktok Snapchat Linkedin Reddit Pinterest Uber Lyft Airbnb Tesla Ford Toyota Honda
    Nike Adidas Ikea Walmart Target Costco Starbucks Mcdonalds Chrome Firefox Safari Edge Opera Outlook Gmail Office Word
    PowerPoint Dropbox Notion Trello Jira Confluence Salesforce Shopify Wordpress Intel Amd Nvidia Qualcomm Dell Lenovo
    Asus Acer Huawei Xiaomi Oneplus Nokia Motorola Canon Nikon Bose Dyson Philips Roku Fire Prime Plus Pro Max Mini Ultra
    Lite Air Nano Dot Jetson Raspberry Paperwhite ThinkPad Surface Claude Gemini Llama Mistral Mixtral Gemma Falcon Qwen Copilot Chatgpt Gpt Bard Openai Anthropic Cohere
    Card Debit Credit Bank Wallet Pay Cash Transfer Refund Fee Fees Atm Pin Euro Euros Dollar Dollars Pound Pounds
    Cashback Contactless Chargeback Topup Payout Fintech Neobank Bitcoin Ethereum
    """
)
COMMON = _words(
    """
    Generate Create Write Find Explain Describe Classify Rewrite Summarize Summarise Translate Calculate Compute Convert
    Implement Design Construct Identify Name Suggest Edit Compare Analyze Analyse Evaluate Determine Give Provide Make
    Build Develop Add Remove Delete Update Insert Sort Reverse Print Return Check Count Show List Select Choose Pick Use
    Read Parse Format Split Join Merge Replace Search Filter Map Reduce Apply Run Execute Call Define Declare Initialize
    Output Input Produce Predict Estimate Solve Simplify Evaluate Prove Derive Plot Draw Outline Rank Rate Categorize
    Tell Say Answer Respond Reply Help Please Thanks Thank Hello Hi Hey Dear Yes No Okay Ok Sure Maybe Correct Incorrect
    Right Wrong Agree Disagree Neutral Positive Negative Good Bad Great Fine Excellent Poor Best Better Worse Worst Today
    Tomorrow Yesterday Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March July
    September October November December Fall North South East West Note Step Steps
    First Second Third Finally Also However Therefore Then Next Last Hint Tip Warning Caution Important Example Question
    Instruction Instructions Task Context Reason Explanation Conclusion Summary Introduction Overview Title Subject Topic
    Chapter Section Part Figure Option Options Choice Choices Category Label Sentiment Text Sentence Paragraph Word Words
    Human Assistant System Bot Agent Support Service Team Staff Admin Administrator Manager Owner Member Guest Visitor
    Sir Madam Mister Miss Lord Lady King Queen Prince Princess God Jesus Christ Allah Buddha Santa Claus
    Love Peace Happy Sad Angry Free Premium Basic Standard Gold Silver Platinum Black White Red Blue Green
    Fahrenheit Celsius Kelvin Newton Joule Watt Volt Ohm Hertz Pascal Kilogram Meter Metre
    """
)
VOCABULARY = PROGRAMMING | BRANDS | COMMON


def is_vocabulary(word: str) -> bool:
    """Whether ``word`` (any case, possessive ``'s`` ignored) is a common, product or programming word."""
    w = word.lower().removesuffix("'s").removesuffix("’s")
    return w in VOCABULARY
